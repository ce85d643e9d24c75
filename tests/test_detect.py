"""Detection (MAP 6.1): box encoding, anchor points, centre-sampling and task-aligned
assignment, the stride-4 level, the loss, mAP through torchmetrics, and every registered
detector's shapes and gradients."""

import json

import pytest
import torch

from deepatlas.models import create_model, list_models
from deepatlas.models.detector import anchor_points, decode, encode, postprocess
from deepatlas.tasks.detect import (assign, detection_loss, pairwise_iou, paired_iou,
                                    task_aligned_assign)


def test_encode_then_decode_is_the_identity():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(50, 2, generator=g) * 64
    boxes = torch.cat([points - torch.rand(50, 2, generator=g) * 10,
                       points + torch.rand(50, 2, generator=g) * 10], 1)
    distances = encode(points, boxes)
    assert (distances >= 0).all()  # a point inside its box is at a non-negative distance
    torch.testing.assert_close(decode(points, distances), boxes)


def test_paired_iou_is_the_diagonal_of_torchvisions_box_iou():
    from torchvision.ops import box_iou

    g = torch.Generator().manual_seed(0)
    corners = torch.rand(2, 40, 2, generator=g) * 50
    sides = torch.rand(2, 40, 2, generator=g) * 30 + 1
    a, b = (torch.cat([c, c + s], 1) for c, s in zip(corners, sides))
    b[0] = a[0]  # identical: 1
    b[1] = a[1] + torch.tensor([100.0, 0, 100, 0])  # disjoint: 0
    iou = paired_iou(a, b)
    torch.testing.assert_close(iou, box_iou(a, b).diagonal())
    assert iou[0] == 1 and iou[1] == 0


def test_targets_pad_to_the_most_objects_any_image_has():
    """A photograph of one's own can hold more objects than a digit scene's three."""
    from deepatlas.data.scenes import Scenes
    from deepatlas.tasks.detect import padded_targets

    boxes = [torch.tensor([[0.0, 0, 4, 4]] * k).reshape(-1, 4) for k in (6, 0, 2)]
    labels = [torch.arange(k) for k in (6, 0, 2)]
    scenes = Scenes(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 0, 0), boxes,
                    labels)
    padded, classes = padded_targets(scenes)
    assert padded.shape == (3, 6, 4) and classes.shape == (3, 6)
    assert classes[0].tolist() == list(range(6)) and classes[1].tolist() == [-1] * 6
    assert torch.equal(padded[2, :2], boxes[2]) and classes[2, 2:].eq(-1).all()


def test_anchor_points_are_cell_centres_level_by_level():
    points, strides = anchor_points([(2, 2), (1, 1)], (8, 16))
    assert points.tolist() == [[4, 4], [12, 4], [4, 12], [12, 12], [8, 8]]
    assert strides.tolist() == [8, 8, 8, 8, 16]


def test_assignment_takes_points_near_the_centre_and_the_smallest_box():
    points, strides = anchor_points([(8, 8), (4, 4)], (8, 16))
    big = torch.tensor([0.0, 0.0, 64.0, 64.0])
    small = torch.tensor([24.0, 24.0, 40.0, 40.0])
    boxes = torch.stack([big, small, torch.zeros(4)])[None]  # (1, 3, 4), the last is padding
    labels = torch.tensor([[1, 2, -1]])
    index, positive = assign(points, strides, boxes, labels)
    centre = ((points - 32).abs() < 8).all(1) & (strides == 8)  # the four stride-8 centre cells
    assert (index[0, centre] == 1).all()  # the small box wins where both qualify
    assert (index[0] != 2).all()  # padding is never assigned
    far = ((points - 32).abs() > 2.5 * strides[:, None]).any(1)
    assert not positive[0, far].any()  # centre sampling: never far from an object's centre


def test_pairwise_iou_is_torchvisions_box_iou_image_by_image():
    from torchvision.ops import box_iou

    g = torch.Generator().manual_seed(1)
    corners, sides = torch.rand(2, 7, 2, generator=g) * 50, torch.rand(2, 7, 2, generator=g) * 30
    boxes = torch.cat([corners, corners + sides + 1], -1)  # (2, 7, 4)
    a, b = boxes[:, :5], boxes[:, 5:]
    iou = pairwise_iou(a, b)
    assert iou.shape == (2, 5, 2)
    for i in range(2):
        torch.testing.assert_close(iou[i], box_iou(a[i], b[i]))


def test_task_aligned_assignment_takes_the_best_aligned_points_inside_each_box():
    points, strides = anchor_points([(8, 8), (4, 4)], (8, 16))
    n = len(points)
    # the third slot is padding (label -1), its box covering every point
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0], [30.0, 30.0, 60.0, 60.0], [0, 0, 64, 64]]])
    labels = torch.tensor([[3, 1, -1]])
    # every point predicts a box 10 px around itself, with class scores 0.1 ...
    pred = torch.cat([points - 5, points + 5], -1)[None].clone()  # (1, N, 4)
    scores = torch.full((1, n, 5), 0.1)
    # ... but one point inside the first box predicts it exactly, and scores its class 0.9
    best = int(((points - torch.tensor([20.0, 20.0])).abs().sum(1)).argmin())
    pred[0, best], scores[0, best, 3] = boxes[0, 0], 0.9
    index, positive, target = task_aligned_assign(pred, scores, points, boxes, labels, topk=3)
    x, y = points[:, 0], points[:, 1]
    for m, (x1, y1, x2, y2) in enumerate(boxes[0, :2].tolist()):
        mine = positive[0] & (index[0] == m)
        assert 1 <= mine.sum() <= 3  # topk per object (a shared point may go to the other)
        assert ((x[mine] > x1) & (x[mine] < x2) & (y[mine] > y1) & (y[mine] < y2)).all()
    assert (index[0] != 2).all()  # padding is never assigned
    assert index[0, best] == 0 and target[0, best] == pytest.approx(1.0)  # its IoU is 1
    assert (target[0, positive[0]] <= 1).all() and (target[0, ~positive[0]] == 0).all()
    assert (index[0, ~positive[0]] == -1).all()


def test_a_point_two_objects_take_keeps_the_one_its_box_overlaps_most():
    points = torch.tensor([[10.0, 10.0]])  # inside both boxes
    boxes = torch.tensor([[[0.0, 0.0, 20.0, 20.0], [2.0, 2.0, 22.0, 22.0]]])
    labels = torch.tensor([[0, 1]])
    pred = boxes[:, :1].clone()  # IoU 1 with the first object, 0.68 with the second
    # the second object's class scores 1, the first's 0.001: t = s^0.5 u^6 is 0.032 for the
    # first and 0.099 for the second, so overlap, not alignment, must decide
    scores = torch.tensor([[[0.001, 1.0]]])
    index, positive, target = task_aligned_assign(pred, scores, points, boxes, labels)
    assert positive.all() and index.item() == 0 and target.item() == pytest.approx(1)


def test_a_thin_box_between_stride_8_centres_gets_points_only_with_the_stride_4_level():
    box = torch.tensor([[[13.0, 8.0, 19.0, 40.0]]])  # 6 px wide: between centres 12 and 20
    labels = torch.tensor([[1]])
    for strides, found in (((8, 16), False), ((4, 8, 16), True)):
        points, point_strides = anchor_points([(64 // s, 64 // s) for s in strides], strides)
        _, positive = assign(points, point_strides, box, labels)
        assert positive.any() == found
        _, positive, _ = task_aligned_assign(torch.cat([points - 4, points + 4], -1)[None],
                                             torch.full((1, len(points), 2), 0.5), points, box,
                                             labels)
        assert positive.any() == found


@pytest.mark.parametrize("assigner", ["centre", "task-aligned"])
def test_the_loss_is_lower_for_right_predictions_and_has_a_gradient(assigner):
    points, strides = anchor_points([(8, 8), (4, 4)], (8, 16))
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    labels = torch.tensor([[3]])
    index, positive = assign(points, strides, boxes, labels)
    right = torch.full((1, len(points), 4 + 5), -6.0)
    right[..., :4] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    right[positive, :4] = boxes[0, 0]
    right[positive, 4 + 3] = 6.0
    wrong = right.clone()
    wrong[positive, :4] = torch.tensor([30.0, 30.0, 60.0, 60.0])
    wrong[positive, 4 + 3], wrong[positive, 4 + 1] = -6.0, 6.0
    wrong.requires_grad_(True)
    loss_right, _ = detection_loss(right, boxes, labels, points, strides, assigner)
    loss_wrong, logs = detection_loss(wrong, boxes, labels, points, strides, assigner)
    assert loss_right < loss_wrong and logs["positives"] > 0
    loss_wrong.backward()
    assert wrong.grad.abs().sum() > 0


def test_map_through_torchmetrics_of_one_perfect_box_and_one_miss():
    from torchmetrics.detection import MeanAveragePrecision

    out = torch.full((1, 3, 4 + 2), -9.0)  # three anchor points, two classes
    out[0, 0, :4] = torch.tensor([2.0, 2.0, 20.0, 20.0])  # exactly the first object
    out[0, 0, 4] = 9.0
    metric = MeanAveragePrecision(iou_type="bbox")
    metric.update(postprocess(out), [{"boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0],
                                                             [30.0, 30.0, 50.0, 50.0]]),
                                      "labels": torch.tensor([0, 1])}])
    result = metric.compute()
    # Class 0: found exactly (AP 1); class 1: missed (AP 0); mAP is their mean.
    assert result["map_50"].item() == pytest.approx(0.5)
    assert result["map"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("p2", [False, True])
@pytest.mark.parametrize("name", list_models("detect"))
def test_every_detector_outputs_boxes_and_logits_and_trains_every_parameter(name, p2):
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, image_size=32, num_classes=5, width=8, p2=p2)
    out = model(torch.randn(2, 3, 32, 32))
    points, strides = model.anchor_points(32, 32)
    # 4x4 cells at stride 8 and 2x2 at 16, and with p2 8x8 at stride 4 first
    assert strides.unique().tolist() == ([4.0, 8.0, 16.0] if p2 else [8.0, 16.0])
    assert len(points) == (64 if p2 else 0) + 16 + 4
    assert out.shape == (2, len(points), 4 + 5) and torch.isfinite(out).all()
    assert (out[..., 2:4] >= out[..., :2]).all()  # x2 >= x1, y2 >= y1: distances are >= 0
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, 40, 40))


def test_train_then_predict_draws_boxes_on_an_image_of_any_size(cli, tmp_path):
    from PIL import Image

    from fakedata import make_scene_sources

    sources = make_scene_sources(tmp_path / "sources")
    run = tmp_path / "run"
    code, out, err = cli("train", "detect-scenes", "--out", run, "--no-progress", "--set",
                         f"data.dir={sources}", "--set", "data.image_size=32", "--set",
                         "model.width=4", "--set", "train.epochs=1", "--set",
                         "train.batch_size=8", "--set", "train.limit_train_batches=3",
                         "--set", "train.limit_eval_examples=8", "--set",
                         "train.tensorboard=false")
    assert code == 0, err
    assert "test_map50" in out
    summary = json.loads((run / "summary.json").read_text())  # the recipe's data.more_photos
    assert summary["data"]["source"].endswith(f"{sources / 'photos'} and "
                                              f"{sources / 'photos-more'}")
    Image.new("RGB", (37, 21), (40, 90, 200)).save(tmp_path / "odd.png")
    code, out, err = cli("predict", run, tmp_path / "odd.png", "--out", tmp_path / "boxes.png",
                         "--json")
    assert code == 0, err
    assert '"detections"' in out
    with Image.open(tmp_path / "boxes.png") as drawn:
        assert drawn.size == (37, 21)
    Image.new("RGB", (15, 40), (40, 90, 200)).save(tmp_path / "small.png")
    code, _, err = cli("predict", run, tmp_path / "small.png")
    assert code == 2 and err.count("\n") == 1, err
    assert "smaller than one cell of this network's 16-px grid" in err

    # eval scores the test scenes again, as training did, and --predictions writes them in
    # COCO's format: pycocotools' own COCOeval gives the same mAP.
    code, out, err = cli("eval", run, "--json", "--predictions", tmp_path / "dets.json")
    assert code == 0, err
    result = json.loads(out)
    summary = json.loads((run / "summary.json").read_text())
    assert result["test_map50"] == pytest.approx(summary["test_map50"], abs=1e-9)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO(str(tmp_path / "dets.truth.json"))
    found = json.loads((tmp_path / "dets.json").read_text())
    if found:  # an untrained detector may find nothing above the threshold
        scored = COCOeval(truth, truth.loadRes(str(tmp_path / "dets.json")), "bbox")
        scored.evaluate(), scored.accumulate(), scored.summarize()
        assert scored.stats[0] == pytest.approx(result["test_map"], abs=1e-6)
        assert scored.stats[1] == pytest.approx(result["test_map50"], abs=1e-6)
    code, _, err = cli("eval", run, "--predictions", tmp_path / "dets.json")
    assert code == 2 and "exists; pass --force" in err

    # export: ONNX (checked against PyTorch inside export), which onnxruntime runs alone;
    # predict refuses the exported file, pointing back to the run
    code, out, err = cli("export", run, "--format", "onnx", "--out", tmp_path / "det.onnx")
    assert code == 0, err
    import onnxruntime

    from deepatlas.compress.export import _saved_detector
    from deepatlas.train import load_checkpoint

    session = onnxruntime.InferenceSession(str(tmp_path / "det.onnx"))
    x = torch.randn(3, 3, 32, 32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = _saved_detector(load_checkpoint(run / "best.pt"))(x)
    # the recipe's three levels at 32 px: 8x8 + 4x4 + 2x2 points, each 4 + 10 values
    assert got.shape == tuple(expected.shape) == (3, 84, 14)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-3, rtol=1e-4)
    code, _, err = cli("predict", tmp_path / "det.onnx", tmp_path / "odd.png")
    assert code == 2 and "is an exported detect model" in err
    code, _, err = cli("export", run, "--format", "torchscript")
    assert code == 2 and "exports as onnx or pt2" in err
