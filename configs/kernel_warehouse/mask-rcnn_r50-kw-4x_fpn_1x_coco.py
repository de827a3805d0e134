# Mask R-CNN R-50-FPN 1x COCO + KernelWarehouse 4x in the backbone (official
# detection/configs/kernelwarehouse/resnet50/mask_rcnn_kw4x_resnet50_adamw_1x_coco.py
# backbone; the rest is mmdet's 1x recipe of ../static/). With `pretrained` set to the
# static ImageNet ResNet-50 the KW layers start from it at τ = 1 (exactly the static
# network) and τ goes to 0 in the first epoch.
_base_ = ['../static/mask-rcnn_r50-static_fpn_1x_coco.py',
          '../_base_/schedules/kw_temperature_1e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='KW', cell_num_ratio=4)))
