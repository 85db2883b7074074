"""What a node shows about itself to operators: metrics, status and health over HTTP."""
