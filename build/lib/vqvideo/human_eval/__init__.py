"""Human preference study kit (the paper's Table 1): pair two systems' videos of the same clips
(`pairs`), serve a blinded side-by-side rating page backed by SQLite (`app`, `db`, `blinding`, `static/`),
and report preferences with confidence intervals and rater agreement (`report`); `command` is the CLI."""
