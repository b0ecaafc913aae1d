"""Storage side of simfail: LeRobot v3.0 datasets of counterfactual failure groups."""

from simfail.dataset.reader import SimfailDataset
from simfail.dataset.video import VideoCodecError, VideoEncoder, decode_frames, frame_times
from simfail.dataset.writer import DatasetWriter

__all__ = ["DatasetWriter", "SimfailDataset", "VideoCodecError", "VideoEncoder", "decode_frames", "frame_times"]
