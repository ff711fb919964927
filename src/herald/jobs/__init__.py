"""Background jobs: long actions (a bulk action over a whole filter; later imports and
exports) that run in checkpointed steps, resumable after a crash, in the workers."""
