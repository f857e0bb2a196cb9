"""A user's own package, as it would live in their project: Obliviate imports it by path."""
