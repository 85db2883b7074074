"""The node runtime: drives a protocol core with real time, real sockets and real storage."""
