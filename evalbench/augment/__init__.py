"""Composable, generator-driven audio augmentations for ``evalbench pretrain``.

- :mod:`evalbench.augment.spectrogram`: BYOL-A's log-mel view chain (Niizumi et
  al., IJCNN 2021 and TASLP 2023): :class:`~evalbench.augment.spectrogram.MixupBank`
  (log-mixup-exp with a FIFO memory bank), :class:`~evalbench.augment.spectrogram.RandomResizeCrop`,
  :class:`~evalbench.augment.spectrogram.RandomLinearFader` (v2) and
  :class:`~evalbench.augment.spectrogram.PostNorm`, plus the pure functions
  ``mixup`` and ``resize_crop`` they are built on.
- :mod:`evalbench.augment.waveform`: the supervised ESC-50 baselines' one-of-six
  waveform augmentation (V. Dimitrov's 2022 report),
  :class:`~evalbench.augment.waveform.SupervisedWaveformAugment`, with the
  torch-only ``time_stretch`` and ``pitch_shift`` it uses.
- :mod:`evalbench.augment.views`: MSN's multi-crop views (Assran et al., ECCV
  2022): square RandomResizedCrops of the log-mel at 224 and 96 px and the
  patch-drop masks shared with the ViT's token-drop path.
- :mod:`evalbench.augment.clar`: CLAR's six waveform families (Al-Tahan &
  Mohsenzadeh, AISTATS 2021, §3.4), each applied with probability ``p``.
- :mod:`evalbench.augment.clmr`: CLMR's chain (Spijkervet & Burgoyne, ISMIR
  2021): polarity, noise, gain, filters, delay, pitch and reverb.

Conventions shared by every random augmentation (the training loop relies on them):

- it is an ``nn.Module`` whose ``forward(x, generator)`` (the waveform one also takes
  ``lengths``) draws every random number from the explicit CPU ``torch.Generator``
  owned by the loop, then moves the draws to ``x.device``; never the global or numpy
  RNG, so equal inputs and generator state give equal outputs and a checkpointed
  generator resumes exactly;
- it works on the whole batch on the training device;
- state that must survive a checkpoint (the mixup bank) lives in buffers and
  round-trips through ``state_dict()`` / ``load_state_dict()``.

Import the submodules directly; this package imports nothing itself.
"""
