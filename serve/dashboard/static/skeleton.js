// COCO-17 skeleton and track colours (the same as wdp.serve.dashboard.render, so the server-rendered stream
// and this page colour a person alike).

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
