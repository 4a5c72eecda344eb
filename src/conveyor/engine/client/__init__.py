"""The one seam to Redis, below the rest of the engine: connections and
their settings (:mod:`.connection`), the pipelined channel every command
rides (:mod:`.channel`), routing on a Redis Cluster (:mod:`.cluster`),
riding out a failover (:mod:`.failover`), and the Lua scripts that make
every state change (:mod:`.scripts`)."""
