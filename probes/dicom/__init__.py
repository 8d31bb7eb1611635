"""DICOM upper-layer probe: detection, AE title exposure, unknown-peer operations."""
