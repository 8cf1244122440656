"""Feature preprocessing shared by training and serving: one copy, shipped in both images."""
