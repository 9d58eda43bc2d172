"""Everything that touches a machine lives here."""
