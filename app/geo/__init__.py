"""Pure geodesy: coordinate systems and distances. No Flask, no database."""
