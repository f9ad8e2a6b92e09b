"""One pool shared by many processes and machines through Redis (`redis_url`)."""
