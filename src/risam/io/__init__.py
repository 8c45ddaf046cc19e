"""Everything risam reads from and writes to files, below the model and the data.

- :mod:`risam.io.files`: atomic writes (umask, fsync, rename) and readable-file checks.
- :mod:`risam.io.download`: fetching files (resume with HTTP Range, SHA-256, the ``$RISAM_HOME`` cache).
- :mod:`risam.io.images`: images in (any format Pillow reads, bounded in pixels).
- :mod:`risam.io.state_dict`: ``torch.load`` without code, strict state-dict loading, ``CheckpointError``.
- :mod:`risam.io.torchscript_reader`: OpenAI's CLIP TorchScript archives read without running them.
- :mod:`risam.io.weights`: our safetensors weights and encoders files, with the config they record.
- :mod:`risam.io.checkpoint`: training checkpoints for exact resume.
- :mod:`risam.io.config_files`: an experiment's config written as YAML.
"""
