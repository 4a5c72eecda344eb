"""Reference application: the artist import pipeline of a concert-setlist platform, on Conveyor."""
