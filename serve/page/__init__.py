"""The page at / : its static files and the route that serves them."""
