"""RunPod: the client the product talks to RunPod with, and the emulator that plays RunPod.

- `client` (`RunPodClient`): REST v2 control plane and serverless data plane, over httpx.
- `sandbox/`: the local RunPod emulator `make run` starts when no RunPod key is set; the
  real client runs against it unchanged.
"""
