"""Segmentation metrics, reports and pictures."""
