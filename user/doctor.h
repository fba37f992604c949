/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BUNSCOPE_DOCTOR_H
#define BUNSCOPE_DOCTOR_H

struct config;

/* Print a checklist of what bunscope needs; returns the number of blockers. */
int doctor_run(const struct config *cfg);

#endif /* BUNSCOPE_DOCTOR_H */
