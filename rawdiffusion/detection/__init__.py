"""RAW-domain object detection (REFERENCE.md, "Object detection")."""
