#!/usr/bin/env bash
# Chapter 4 at paper scale: m = 512..8,192 at N = 32,768, d = 10 (book/running.md).
exec bash "$(dirname "$0")/prepared.bash" threshold_gpu "$@"
