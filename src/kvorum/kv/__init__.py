"""The key-value state machine that Raft replicates, and the ordered engines it stores into."""
