"""tdrl's fused Triton kernels (``model.kernels=triton``), as PyTorch custom operators with autograd.

``excite_tim`` (PEM's/MEM's excitation fused with TIM's temporal conv or TSM's shift), ``pem`` (PEM's
enhancement vectors, with the gate recurrence of ``gate`` in one launch), ``td`` (the TD loss in one
pass), ``pool`` (the frame pooling with a broadcast backward); ``launch`` holds what they share. The
modules are imported where the Triton path is taken, so importing :mod:`tdrl.model` never needs
Triton. docs/kernels.md describes the design and how the kernels are tested.
"""
