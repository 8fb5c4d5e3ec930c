"""The console's browser files (index.html, *.js, app.css), shipped as package data and served from here."""
