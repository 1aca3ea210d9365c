"""Training-step parity with s2bnn's native Trainer.

  train_parity.py IN OUT   IN (written by s2bnn): config (JSON), the student's and teacher's state
                           dicts, the views and labels of each step. Runs the same steps with the
                           straightforward PyTorch implementation (scripts/python/s2bnn_train.py)
                           and writes OUT: per-step losses and the student's final state dict.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'python'))
import s2bnn_models  # noqa: E402
import s2bnn_train  # noqa: E402

torch.set_num_threads(int(os.environ.get('S2BNN_NUM_THREADS', os.cpu_count())))


def main():
    data = torch.load(sys.argv[1])
    config = json.loads(data['config'])
    recipe = config['recipe']
    spec = config['spec']
    if config['moco']:
        model = s2bnn_train.MoCo(lambda: s2bnn_models.build(spec), config['dim'], config['queueSize'])
    else:
        model = s2bnn_models.build(spec)
    # A MoCo of torchvision ResNets names its encoders' weights encoder_q.net.* (the wrapper's
    # own state_dict drops "net." only at the top level).
    wrapped = config['moco'] and spec['arch'].startswith('resnet')
    rename = (lambda k: k.replace('encoder_q.', 'encoder_q.net.').replace('encoder_k.', 'encoder_k.net.')) if wrapped \
        else (lambda k: k)
    model.load_state_dict({rename(k): v for k, v in data['student'].items()})
    teacher = None
    if 'teacher' in data:
        teacher = s2bnn_models.build(config['teacherSpec'])
        teacher.load_state_dict(data['teacher'])
    if config.get('eval'):
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith('fc.')
    # As the official scripts build their optimizers: main_moco.py over model.parameters() (MoCo:
    # encoder_q, then encoder_k), main_lincls.py over the trainable ones.
    params = [p for p in model.parameters() if recipe != 'supervised' or p.requires_grad]
    step = s2bnn_train.Step(recipe, model, teacher, s2bnn_train.make_optimizer(params, config['optimizer']),
                            key_groups=config.get('keyGroups', 8), seed=config.get('seed', 0))
    if config.get('eval'):
        model.eval()
    losses = []
    for i in range(config['steps']):
        views = [data[f'step{i}.view{v}'] for v in range(config['views'])]
        losses.append(step(views, data.get(f'step{i}.labels')))
    state = {k.replace('.net.', '.') if wrapped else k: v for k, v in model.state_dict().items()}
    torch.save({'losses': json.dumps(losses), 'state_dict': state,
                'optimizer': step.optimizer.state_dict()}, sys.argv[2])


if __name__ == '__main__':
    main()
