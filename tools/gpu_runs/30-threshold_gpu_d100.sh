#!/usr/bin/env bash
# Chapter 4 at paper scale, d = 100: m = 512..4,096 at N = 16,384 (book/running.md).
exec bash "$(dirname "$0")/prepared.bash" threshold_gpu_d100 "$@"
