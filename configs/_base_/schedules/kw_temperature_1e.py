# KernelWarehouse's mixing temperature τ of the Mask R-CNN KW variants: 1 -> 0 over the
# first epoch. A KW backbone inflated from the static ImageNet checkpoint starts at τ = 1,
# where it computes exactly the static network; the 12-epoch 1x fine-tuning then moves
# it to the attention alone (as ./temperature_anneal_1e.py does for the other layers).
custom_hooks = [
    dict(type='TemperatureAnnealHook', layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=1)))
]
