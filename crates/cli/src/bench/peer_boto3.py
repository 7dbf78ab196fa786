"""The boto3 peer of `vast-ost bench`: s3transfer as its users run it (16 MiB parts, 8 threads).

    peer_boto3.py upload FILE BUCKET KEY
    peer_boto3.py download BUCKET KEY FILE      (FILE "-": to a sink, in order, no file)
    peer_boto3.py copy BUCKET KEY BUCKET2 KEY2  (managed copy: UploadPartCopy inside the server)
    peer_boto3.py random BUCKET KEY SIZE COUNT BLOCK SEED   (ranged GETs at the bench's offsets)

Endpoint and keys come from BENCH_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1 << 20
CFG = TransferConfig(multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=8)


def offsets(size, count, block, seed):
    """The same offsets as `vast-ost read-random` (bench/worker.rs): a 64-bit LCG."""
    x = seed
    blocks = size // block
    for _ in range(count):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield ((x >> 11) % blocks) * block


def main():
    op, a = sys.argv[1], sys.argv[2:]
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["BENCH_S3_ENDPOINT"],
        region_name="us-east-1",
        config=Config(max_pool_connections=16, retries={"max_attempts": 5, "mode": "standard"}),
    )
    if op == "upload":
        s3.upload_file(a[0], a[1], a[2], Config=CFG)
    elif op == "download":
        if a[2] == "-":
            # /dev/null: a sink s3transfer can write its ranges to out of order (an object
            # without seek makes it buffer, and it was seen to hang so).
            with open(os.devnull, "wb") as sink:
                s3.download_fileobj(a[0], a[1], sink, Config=CFG)
        else:
            s3.download_file(a[0], a[1], a[2], Config=CFG)
    elif op == "copy":
        s3.copy({"Bucket": a[0], "Key": a[1]}, a[2], a[3], Config=CFG)
    elif op == "random":
        size, count, block, seed = (int(v) for v in a[2:6])
        for off in offsets(size, count, block, seed):
            r = s3.get_object(Bucket=a[0], Key=a[1], Range="bytes=%d-%d" % (off, off + block - 1))
            if len(r["Body"].read()) != block:
                sys.exit("short read at %d" % off)
    else:
        sys.exit("unknown operation " + op)


if __name__ == "__main__":
    main()
