"""Everything risam reads from and writes to files, below the model and the data: no other package opens one.

- :mod:`risam.io.files`: atomic writes (umask, fsync, rename) of text, bytes, JSON and copies; readable-file checks.
- :mod:`risam.io.reading`: whole files read as bytes, UTF-8 text or JSON, or line by line.
- :mod:`risam.io.logs`: CSV tables and text logs appended to while a run goes.
- :mod:`risam.io.archives`: zip archives unpacked through a staging folder; files moved into place.
- :mod:`risam.io.download`: fetching files (resume with HTTP Range, SHA-256, the ``$RISAM_HOME`` cache).
- :mod:`risam.io.images`: images in (any format Pillow reads, bounded in pixels); pictures written atomically.
- :mod:`risam.io.state_dict`: ``torch.load`` without code, strict state-dict loading, ``CheckpointError``.
- :mod:`risam.io.torchscript_reader`: OpenAI's CLIP TorchScript archives read without running them.
- :mod:`risam.io.weights`: our safetensors weights and encoders files, with the config they record; any
  safetensors file read.
- :mod:`risam.io.checkpoint`: training checkpoints for exact resume.
- :mod:`risam.io.config_files`: an experiment's config read from and written to YAML.
"""
