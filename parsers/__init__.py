"""Pure text functions: normalisation, command grammar, codes and checksums.

Nothing in this package does I/O, touches a database or knows about HTTP; every
function takes text and returns values, so each can be tested with a doctest.
"""
