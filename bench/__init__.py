"""The benchmark suite: the app's worker, run from the Procfile as a platform runs it, side by
side with RQ's stock workers. ``make bench``; docs/performance.md says what each row means."""
