"""The official S2-BNN code's checkpoint conventions, for test/official.test.ts.

The official scripts train every student as a MoCo wrapper of ReActNet through
DistributedDataParallel and save {epoch, arch, state_dict, optimizer} (main_moco.py); step 2
loads step 1 strictly; main_lincls.py reads a pre-trained file by one filtering rule and writes
its classifier with best_acc1 and the SGD state (docs/checkpoints.md lists the facts).
s2bnn_models.ReActNetA and s2bnn_train.MoCo have the official module layout (`layout` prints
it for the test to compare with s2bnn's); this file adds DistributedDataParallel's key prefix, the
distillation step and the load paths the way those scripts run them.

  official.py layout                 JSON: state-dict keys and shapes, parameter order
  official.py pretrain DIR CONFIG    a main_moco.py distillation run: DIR/teacher.pth.tar (legacy
                                     format, as the public teacher), DIR/checkpoint.pth.tar after
                                     two epochs, DIR/next.pth (the third epoch's batch, loss and
                                     resulting state)
  official.py lincls DIR CONFIG      a main_lincls.py checkpoint DIR/lincls.pth.tar (legacy
                                     format) and DIR/lincls-logits.pth (an input and its logits)
  official.py check CONFIG OUT       the official load paths on s2bnn's files; OUT holds the
                                     outputs of the networks they built
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'python'))
import s2bnn_models  # noqa: E402
import s2bnn_train  # noqa: E402
from model_parity import perturb  # noqa: E402  (trained-looking weights and BatchNorm statistics)

torch.set_num_threads(int(os.environ.get('S2BNN_NUM_THREADS', os.cpu_count())))


class DistributedDataParallel(nn.Module):
    """What torch.nn.parallel.DistributedDataParallel adds to a state dict: `module.`."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def student(step, queue_size):
    """main_moco.py's student: MoCo(ReActNet, dim 128, K, mlp=True) through DDP."""
    return DistributedDataParallel(s2bnn_train.MoCo(
        lambda: s2bnn_models.ReActNetA(binarize_weights=step == 2, head='mlp', mlp_dim=128), 128, queue_size))


def classifier(classes):
    """main_lincls.py's classifier: ReActNet(num_classes) with only fc trainable."""
    model = s2bnn_models.ReActNetA(num_classes=classes)
    for name, p in model.named_parameters():
        p.requires_grad = name in ('fc.weight', 'fc.bias')
    return model


def distill_step(model, teacher, optimizer, images, temperature):
    """One step of main_moco.py's distillation loop (kd_loss.DistributionLoss at moco_t)."""
    model.train()
    teacher.eval()
    q = model.module.encoder_q(images)  # L2-normalized: the MLP-head model normalizes its output
    with torch.no_grad():
        t = teacher(images)
    loss = -(F.softmax(t / temperature, 1) * F.log_softmax(q / temperature, 1)).sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def layout():
    net = s2bnn_models.ReActNetA()
    moco = s2bnn_train.MoCo(lambda: s2bnn_models.ReActNetA(head='mlp', mlp_dim=128), 128, 256)
    describe = lambda m: {'state': [[k, list(v.shape)] for k, v in m.state_dict().items()],
                          'parameters': [k for k, _ in m.named_parameters()]}
    print(json.dumps({'reactnet': describe(net), 'moco': describe(moco)}))


def pretrain(directory, config):
    torch.manual_seed(config['seed'])
    model = student(config['step'], config['queueSize'])
    teacher = s2bnn_models.TorchvisionResNet(18, head='mlp', mlp_dim=128)
    perturb(teacher)
    # moco.builder_teacher.MoCo keeps only encoder_q; the public teacher is a legacy-format file.
    torch.save({'epoch': 800, 'arch': 'resnet18',
                'state_dict': {f'module.encoder_q.{k}': v for k, v in teacher.state_dict().items()}},
               f'{directory}/teacher.pth.tar', _use_new_zipfile_serialization=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config['lr'], weight_decay=config['weightDecay'])
    size, batch, epochs = config['size'], config['batch'], config['epochs']
    batches = [torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(100 + e)) for e in range(3)]

    def epoch(e):
        for group in optimizer.param_groups:  # adjust_learning_rate with --cos
            group['lr'] = config['lr'] * (1 - e / epochs)
        return distill_step(model, teacher, optimizer, batches[e], config['temperature'])

    epoch(0)
    epoch(1)
    torch.save({'epoch': 2, 'arch': 'resnet50', 'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict()},
               f'{directory}/checkpoint.pth.tar')
    loss = epoch(2)
    torch.save({'images': batches[2], 'loss': loss, 'state_dict': model.state_dict()}, f'{directory}/next.pth')


def lincls(directory, config):
    torch.manual_seed(config['seed'])
    model = classifier(config['classes'])
    perturb(model)
    model = DistributedDataParallel(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], 0.1, momentum=0.9)
    x = torch.randn(config['batch'], 3, config['size'], config['size'], generator=torch.Generator().manual_seed(7))
    model.eval()  # main_lincls.py trains the head over a backbone in eval mode
    loss = F.cross_entropy(model.module(x), torch.arange(config['batch']) % config['classes'])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        logits = model.module(x)
    # The legacy format here, the zip format for the student: files of both kinds are in circulation.
    torch.save({'epoch': 1, 'arch': 'resnet50', 'state_dict': model.state_dict(), 'best_acc1': torch.tensor(12.5),
                'optimizer': optimizer.state_dict()}, f'{directory}/lincls.pth.tar', _use_new_zipfile_serialization=False)
    torch.save({'input': x, 'logits': logits}, f'{directory}/lincls-logits.pth')


def check(config, out):
    results = {}
    x = torch.load(config['input'])
    outputs = {}
    with torch.no_grad():
        if 'step1' in config:
            # main_moco.py step 2 with --model-path (strict), then its --resume path's optimizer load.
            checkpoint = torch.load(config['step1'], map_location='cpu')
            model = student(2, checkpoint['state_dict']['module.queue'].shape[1])
            model.load_state_dict(checkpoint['state_dict'])
            optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
            optimizer.load_state_dict(checkpoint['optimizer'])
            results['step1'] = {'states': len(optimizer.state), 'parameters': len(list(model.parameters()))}
            model.eval()
            outputs['step2'] = model.module.encoder_q(x)
        if 'pretrained' in config:
            # main_lincls.py --pretrained: module.encoder_q.* without fc, strict=False, and its assert.
            state_dict = torch.load(config['pretrained'], map_location='cpu')['state_dict']
            for k in list(state_dict.keys()):
                if k.startswith('module.encoder_q') and not k.startswith('module.encoder_q.fc'):
                    state_dict[k[len('module.encoder_q.'):]] = state_dict[k]
                del state_dict[k]
            model = classifier(config['classes'])
            message = model.load_state_dict(state_dict, strict=False)
            assert set(message.missing_keys) == {'fc.weight', 'fc.bias'}, message.missing_keys
            results['pretrained'] = {'missing': sorted(message.missing_keys), 'unexpected': message.unexpected_keys}
        if 'lincls' in config:
            # main_lincls.py --resume: the classifier through DDP (strict), best_acc1 and the SGD state.
            checkpoint = torch.load(config['lincls'], map_location='cpu')
            model = DistributedDataParallel(classifier(config['classes']))
            model.load_state_dict(checkpoint['state_dict'])
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], 0.1, momentum=0.9)
            optimizer.load_state_dict(checkpoint['optimizer'])
            best_acc1 = checkpoint['best_acc1'].to('cpu')  # main_lincls.py moves it to its GPU
            results['lincls'] = {'epoch': checkpoint['epoch'], 'best_acc1': best_acc1.item(), 'states': len(optimizer.state)}
            model.eval()
            outputs['lincls'] = model.module(x)
    torch.save(outputs, out)
    print(json.dumps(results))


def main():
    mode = sys.argv[1]
    if mode == 'layout':
        layout()
    elif mode == 'pretrain':
        pretrain(sys.argv[2], json.loads(sys.argv[3]))
    elif mode == 'lincls':
        lincls(sys.argv[2], json.loads(sys.argv[3]))
    elif mode == 'check':
        check(json.loads(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f'unknown mode {mode}')


if __name__ == '__main__':
    main()
