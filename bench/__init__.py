"""citygate's benchmark suite: `python -m bench` (`make bench`, `make bench-smoke`).

The parts: the signed Twilio webhook under `wrk` against a bare FastAPI ceiling
(`webhook`), latency at a fixed rate from an open-loop generator (`openloop`), the
command parser on the SMS corpora (`parser`), multi-step forms through the webhook
(`conversation`), the email loop against Dovecot and an SMTP capture (`mail`), and the
peak RSS of the server processes. docs/BENCHMARKS.md says what each figure means.
"""
