"""Using a trained model outside the workflow: ``Segmenter`` (images in, panoptic segmentations
out), the model's files (checkpoint, self-contained safetensors bundle, ONNX), and what
``spino segment`` reads and writes."""
