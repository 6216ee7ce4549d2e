"""int8: the quantization scheme, its row-wise activations, and quantizing an exported model directory."""
