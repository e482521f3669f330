"""Plate I/O: image sequences, movies and stills in; atomic EXR frames and review movies out.

``sequence`` names frames, ``colour`` manages colour through OpenColorIO, ``plate`` reads a shot,
``exr`` writes output frames and ``preview`` writes a before|after movie (imported on use: it needs
PyAV). Must not import torch or zmq.
"""

from ned_core.io.colour import check_colorspace, convert, infer_colorspace, ocio_config, to_display_rgb8
from ned_core.io.exr import COMPRESSIONS, read_exr_channels, write_exr
from ned_core.io.plate import ImageInfo, Plate, PlateImage
from ned_core.io.sequence import frame_path, is_sequence_pattern, parse_frame_range, scan_frames

__all__ = [
    "COMPRESSIONS", "ImageInfo", "Plate", "PlateImage", "check_colorspace", "convert", "frame_path",
    "infer_colorspace", "is_sequence_pattern", "ocio_config", "parse_frame_range", "read_exr_channels",
    "scan_frames", "to_display_rgb8", "write_exr",
]
