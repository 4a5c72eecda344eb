"""Social-post distribution on Conveyor: posts dispatched to social
networks now or at a set time, with retries, a dead-letter queue and
background token refresh."""
