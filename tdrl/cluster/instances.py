"""GPU models and cloud instance types the planner prices, each figure with where it comes from.

Two tables:

- :data:`GPUS`: per GPU model its dense BF16 tensor throughput and memory bandwidth, the two numbers
  the speed model (:mod:`tdrl.cluster.speed`) scales a measured rate by.
- :data:`INSTANCES`: per instance type its GPUs, vCPUs, memory, and on-demand and spot prices per hour
  in one region: AWS ``us-west-2`` and GCP ``us-central1``, the regions of cluster/aws.yaml and
  cluster/gcp.yaml. A spot price is the median over the region's availability zones on the day read.

Prices change (spot prices by the hour) and differ by region, contract and discount: the plan prints
which row it used, and ``--gpu-hour-price`` replaces it. Figures not found are ``None`` and said so,
never guessed. :data:`KUBERAY_GPU_PRODUCTS` maps the ``nvidia.com/gpu.product`` node label (NVIDIA GPU
feature discovery: the product name with ``-`` for spaces) to the same GPU models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model's peak numbers (per GPU)."""

    model: str  # "H100", "A100-80GB", ...
    bf16_tflops: float | None  # dense BF16 tensor-core TFLOPS (without structured sparsity)
    bandwidth_tbs: float  # memory bandwidth, TB/s
    memory_gb: int
    source: str


# Dense BF16 = the datasheets' "with sparsity" figure / 2 where only that one is printed. Read 2026-12-01.
GPUS: dict[str, GpuSpec] = {g.model: g for g in (
    GpuSpec("H200", 989.0, 4.8, 141, "NVIDIA H200 Tensor Core GPU datasheet (SXM: BF16 1,979 TFLOPS with sparsity, "
                                      "4.8 TB/s)"),
    GpuSpec("H100", 989.0, 3.35, 80, "NVIDIA H100 Tensor Core GPU datasheet (SXM: BF16 1,979 TFLOPS with sparsity, "
                                     "3.35 TB/s)"),
    GpuSpec("A100", 312.0, 1.555, 40, "NVIDIA A100 Tensor Core GPU datasheet (40 GB SXM: BF16 312 TFLOPS, 1,555 GB/s)"),
    GpuSpec("A100-80GB", 312.0, 2.039, 80, "NVIDIA A100 Tensor Core GPU datasheet (80 GB SXM: BF16 312 TFLOPS, "
                                           "2,039 GB/s)"),
    GpuSpec("L40S", 362.05, 0.864, 48, "NVIDIA L40S datasheet (BF16 362.05 TFLOPS, 733 with sparsity; 864 GB/s)"),
    GpuSpec("L4", 121.0, 0.300, 24, "NVIDIA L4 datasheet (BF16 242 TFLOPS with sparsity; 300 GB/s)"),
    # AWS's A10 variant: NVIDIA publishes no tensor figure for it; the same 600 GB/s as the A10, and less
    # tensor throughput than the A10's (Baseten, "NVIDIA A10 vs A10G for ML model inference"). The A10's
    # 125 TFLOPS is used as a bound: the A10G estimate is then an upper bound on its speed.
    GpuSpec("A10G", 125.0, 0.600, 24, "NVIDIA A10 datasheet (BF16 250 TFLOPS with sparsity, 600 GB/s) as a bound: "
                                      "no A10G tensor figure is published, the A10G has less (Baseten, 'A10 vs "
                                      "A10G')"),
)}

# Longest names first, so "A100-80GB" is found before "A100" and "L40S" before "L4".
_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bH200", "H200"), (r"\bH100", "H100"), (r"\bA100\b.*\b80\s*GB", "A100-80GB"), (r"\bA100", "A100"),
    (r"\bA10G", "A10G"), (r"\bL40S", "L40S"), (r"\bL4\b", "L4"),
)


def gpu_model(name: str) -> str:
    """A device or product name as a key of :data:`GPUS`: ``"NVIDIA H100 80GB HBM3"`` -> ``"H100"``,
    ``"NVIDIA-A100-SXM4-80GB"`` -> ``"A100-80GB"``; ``"cpu"`` -> ``"cpu"``; unknown names pass through."""
    upper = name.upper().replace("-", " ")
    for pattern, model in _PATTERNS:
        if re.search(pattern, upper):
            return model
    return "cpu" if upper.strip() == "CPU" else name.strip()


# The nvidia.com/gpu.product values GPU feature discovery puts on a Kubernetes node (from the product
# name nvidia-smi reports). A KubeRay worker group that selects one of them is priced by GPU model only:
# the node's instance type (and so its price) is the cluster's, not the manifest's: pass --gpu-hour-price.
KUBERAY_GPU_PRODUCTS: dict[str, str] = {label: gpu_model(label) for label in (
    "NVIDIA-H200", "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A10G",
    "NVIDIA-L4", "NVIDIA-L40S",
)}


@dataclass(frozen=True)
class InstanceType:
    """One cloud machine type as the planner prices it."""

    name: str
    provider: str  # "aws", "gcp"
    gpu: str  # a key of GPUS ("" for a CPU-only type)
    gpus: int
    vcpus: int
    memory_gib: float
    usd_per_hour: float | None  # on-demand, Linux
    spot_usd_per_hour: float | None  # spot / Spot VM: median over the region's zones on the day read
    region: str
    source: str

    def price(self, spot: bool = False) -> float | None:
        """USD per instance-hour, on demand or at spot."""
        return self.spot_usd_per_hour if spot else self.usd_per_hour


# Printed by the plan after the region. In full: AWS - skypilot-org/skypilot-catalog, catalogs/v8/aws/
# vms.csv at commit 00148f2 (compiled from AWS's price list and spot price history), read 2026-12-01;
# its p4d/p4de/p5 on-demand prices equal AWS's us-east-1 list prices retrieved 2026-11-09
# (datareceipts, 109-gpu-pricing). GCP - Cyclenerd/google-cloud-pricing-cost-calculator pricing.yml
# (Cloud Billing Catalog API prices), generated 2026-07-30, fields hour / hour_spot; the a2-ultragpu
# and a3 prices include their local SSD.
AWS_SOURCE = "SkyPilot catalog v8 (00148f2) of AWS prices, read 2026-12-01"
GCP_SOURCE = "Cloud Billing Catalog prices (Cyclenerd pricing.yml), generated 2026-07-30"


def _aws(name: str, gpu: str, gpus: int, vcpus: int, mem: float, od: float, spot: float) -> InstanceType:
    return InstanceType(name, "aws", gpu, gpus, vcpus, mem, od, spot, "us-west-2", AWS_SOURCE)


def _gcp(name: str, gpu: str, gpus: int, vcpus: int, mem: float, od: float, spot: float) -> InstanceType:
    return InstanceType(name, "gcp", gpu, gpus, vcpus, mem, od, spot, "us-central1", GCP_SOURCE)


INSTANCES: dict[str, InstanceType] = {i.name: i for i in (
    # AWS us-west-2. Spot: median of the zones usw2-az1..az4 that list the type.
    _aws("g5.12xlarge", "A10G", 4, 48, 192, 5.672, 3.0607),  # spot 3.3699, 2.7570, 3.0607
    _aws("g6.12xlarge", "L4", 4, 48, 192, 4.6016, 2.38945),  # spot 2.3163, 2.5757, 2.4053, 2.3736
    _aws("g6e.12xlarge", "L40S", 4, 48, 384, 10.49264, 3.9813),  # spot 6.4585, 3.7322, 4.2304, 3.1053
    _aws("p4d.24xlarge", "A100", 8, 96, 1152, 21.95764, 8.35265),  # spot 7.9992, 8.2259, 9.7315, 8.4794
    _aws("p4de.24xlarge", "A100-80GB", 8, 96, 1152, 27.44705, 10.9991),  # spot 10.9991, 11.0144, 10.3338
    _aws("p5.48xlarge", "H100", 8, 192, 2048, 55.04, 12.9756),  # spot 12.6935, 12.9785, 12.9727, 16.1301
    _aws("p5en.48xlarge", "H200", 8, 192, 2048, 63.296, 18.3464),  # spot 23.8930, 15.4820, 18.3464
    _aws("m5.2xlarge", "", 0, 8, 32, 0.384, 0.18185),  # spot 0.1807, 0.1830, 0.1874, 0.1777
    # GCP us-central1 (A2/A3/G2 machine types come with their GPUs attached).
    _gcp("g2-standard-48", "L4", 4, 48, 192, 4.001665, 2.249632),
    _gcp("g2-standard-96", "L4", 8, 96, 384, 8.003330, 4.499264),
    _gcp("a2-highgpu-4g", "A100", 4, 48, 340, 14.69354, 7.71208),
    _gcp("a2-highgpu-8g", "A100", 8, 96, 680, 29.38708, 15.42416),
    _gcp("a2-ultragpu-8g", "A100-80GB", 8, 96, 1360, 40.550383, 22.076370),
    _gcp("a3-highgpu-8g", "H100", 8, 208, 1872, 88.490000, 50.609541),
    _gcp("n2-standard-8", "", 0, 8, 32, 0.388472, 0.18424),
)}
