"""Voice rooms: floor control, spoken turns, and the assistant's spoken answers."""
