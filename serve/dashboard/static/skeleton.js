// COCO-17 skeleton, track colours and DensePose part colours (the same as wdp.serve.dashboard.render, so the
// server-rendered stream and this page colour a person alike).

export const SKELETON = [
  [15, 13], [13, 11], [16, 14], [14, 12], [11, 12], [5, 11], [6, 12], [5, 6], [5, 7], [6, 8], [7, 9],
  [8, 10], [1, 2], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6],
];
export const MIN_KEYPOINT_SCORE = 0.3;

// Golden-angle hue per track id: neighbouring ids get far-apart colours, and an id keeps its colour.
export function trackColor(trackId, alpha = 1) {
  const hue = (trackId * 137.508) % 360;
  return alpha === 1 ? `hsl(${hue.toFixed(1)} 75% 55%)` : `hsl(${hue.toFixed(1)} 75% 55% / ${alpha})`;
}

export function drawSkeleton(ctx, person, toPx, lineWidth = 3) {
  const kp = person.keypoints;
  const color = trackColor(person.track_id);
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = lineWidth;
  ctx.lineCap = "round";
  for (const [a, b] of SKELETON) {
    if (kp[a][2] < MIN_KEYPOINT_SCORE || kp[b][2] < MIN_KEYPOINT_SCORE) continue;
    const [x0, y0] = toPx(kp[a][0], kp[a][1]);
    const [x1, y1] = toPx(kp[b][0], kp[b][1]);
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }
  for (const [x, y, s] of kp) {
    if (s < MIN_KEYPOINT_SCORE) continue;
    const [px, py] = toPx(x, y);
    ctx.beginPath();
    ctx.arc(px, py, lineWidth + 0.5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// DensePose colouring: part id i (1..24) takes the jet colormap at i / 24, as DensePose pictures colour their
// part index map; background (0) is not drawn.
function jet(t) {
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - x))));
  return [c(3), c(2), c(1)];
}
export const PART_COLORS = Array.from({length: 25}, (_, i) => (i === 0 ? null : jet(i / 24)));
const PART_STYLES = PART_COLORS.map((c) => (c ? `rgb(${c[0]}, ${c[1]}, ${c[2]})` : null));

// One person's body parts (person.dense: run-length encoded part labels of a crop of the model's label map,
// see wdp.schemas.DensePose), each labelled cell a filled square; toPx maps normalized image coordinates.
// Cell edges are rounded to whole pixels so the parts have no anti-aliased seams.
export function drawParts(ctx, dense, toPx) {
  const [mw, mh] = dense.map_size;
  const [bx, by, bw] = dense.box;
  const runs = dense.parts;
  let at = 0;
  for (let k = 0; k + 1 < runs.length; k += 2) {
    const label = runs[k], count = runs[k + 1];
    const style = PART_STYLES[label];
    if (style) {
      ctx.fillStyle = style;
      for (let j = at; j < at + count; j++) {
        const cx = bx + (j % bw), cy = by + Math.floor(j / bw);
        const [x0, y0] = toPx(cx / mw, cy / mh);
        const [x1, y1] = toPx((cx + 1) / mw, (cy + 1) / mh);
        const px = Math.round(x0), py = Math.round(y0);
        ctx.fillRect(px, py, Math.max(1, Math.round(x1) - px), Math.max(1, Math.round(y1) - py));
      }
    }
    at += count;
  }
}
