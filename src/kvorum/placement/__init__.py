"""The placement driver's pure part: range descriptors, its replicated state machine, the
scheduler's operators and plans, and a simulator that checks them (see README: "The placement
driver")."""
