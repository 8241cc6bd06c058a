"""The edges: FastAPI app, Twilio webhook, operator API, settings and the `citygate` command."""
