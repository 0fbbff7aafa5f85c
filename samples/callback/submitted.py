"""Runs when any job is submitted: one line per job in submitted.log, beside this file."""

import time

import qb

(job,) = qb.jobinfo("-id", qb.jobid())
with open("submitted.log", "a", encoding="utf-8") as log:
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} job {job['id']} {job['name']} submitted\n")
