"""The command line's commands, one module per group, each printing what it shows:
`placing` (place, explain), `fleet` (targets, discover), `leases` (reservations,
release), `serving` (serve, bench), `info` (strategies, schema, config), `history`,
`onboarding` (init). What
they share is in `common`; `acode_placement.cli` loads them all and runs the app.
"""
