"""What each command does: one small module per command, one uniform signature.

``async def handle(command: ParsedCommand, ctx: Context) -> Reply``: a handler gets a
channel-neutral message and returns a channel-neutral reply; it never sends anything
and never learns which channel carried the text. `handlers.registry` routes to them.
"""
