"""Sans-I/O audio core: format math, resampling, WAV files and the playback ring."""
