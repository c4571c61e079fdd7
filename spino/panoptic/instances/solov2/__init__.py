"""SOLOv2 instances (Wang et al., "SOLOv2: Dynamic and Fast Instance Segmentation", NeurIPS 2020),
in plain PyTorch, as "Location Based Efficient Panoptic Segmentation" puts them beside a semantic head.

Every cell of an S x S grid (one grid per level) predicts a category (sigmoid per class, focal
loss) and a 1x1 dynamic kernel; a mask is sigmoid(kernel * mask features), Dice loss on the cells
an instance is assigned to. The mask features are the instance decoder's stride-4 map (its
top-down fusion of strides 4-32 is the unified mask-feature branch) with two coordinate channels.
Inference: point NMS on the category maps, score threshold, masks at 0.5, scores rescored by
maskness, Matrix NMS (Gaussian), the top instances pasted by descending score onto the semantic
head's stuff (``fusion: paste``), or fused with the semantic logits as EfficientPS does
(``fusion: efficientps``).

``method.py`` the method; its settings, heads, targets, detection and fusions are the modules beside this
one (as mmdetection lays out SOLOv2), its focal and Dice losses in spino.losses.
"""
