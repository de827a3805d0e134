# The temperature schedule of the Mask R-CNN variants: 30 -> 1 over the first epoch
# (~7.3k iterations at batch 16). The classification recipe anneals over 10 of 100
# epochs; the 12-epoch 1x fine-tuning keeps that fraction roughly.
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=1)
]
