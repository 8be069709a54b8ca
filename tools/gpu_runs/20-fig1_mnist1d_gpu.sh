#!/usr/bin/env bash
# Chapter 6 at the paper's sizes: MNIST-1D 1K..50K, widths 800-3,200 (book/running.md).
exec bash "$(dirname "$0")/prepared.bash" fig1_mnist1d_gpu "$@"
