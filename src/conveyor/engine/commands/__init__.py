"""The engine's Lua scripts as typed calls: one function per script, taking
the queue's keys and named arguments, and the only code that sends them.
Each module declares its scripts' KEYS, ARGV and reply fields by name
(:class:`~conveyor.engine.client.command.Command`); a test holds every
declaration to its script's header."""
