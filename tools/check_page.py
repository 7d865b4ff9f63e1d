"""Check an HTML page of the project in a real browser: headless Chromium
opens it, every console message it prints is a problem (the pages have no
script), a screenshot is written, and every picture the page references
must decode. The page must also be whole: UTF-8, every element closed, and
every gallery holding the pictures it announces (a page cut short by a full
disk or a killed process fails).

    python -m tools.check_page nme-output/report-model-0012/report.html --screenshot shot.png

Exit 0 when the page is clean, 1 with one line per problem, 2 without a
browser (install Chromium: `apt-get install chromium`).
"""
import argparse
import base64
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile

import cv2
import numpy as np

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
CONSOLE = re.compile(r':CONSOLE[^\]]*\] (.*)')


def find_browser():
    """The path of an installed Chromium, or None."""
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source',
        'track', 'wbr'}


class _Page(html.parser.HTMLParser):
    """The pictures of a page, the elements left open, and per gallery the
    pictures it announces (data-count) and holds."""

    def __init__(self):
        super().__init__()
        self.sources, self.open, self.galleries = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'img':
            self.sources.append(attrs.get('src', ''))
        if tag == 'figure' and self.galleries and self.galleries[-1][2] is not None:
            self.galleries[-1][1] += 1
        if tag not in VOID:
            self.open.append((tag, self.getpos()[0]))
            if 'gallery' in attrs.get('class', '').split():
                self.galleries.append([int(attrs.get('data-count', -1)), 0, len(self.open)])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.open:
            open_tag, _ = self.open.pop()
            if self.galleries and self.galleries[-1][2] == len(self.open) + 1:
                self.galleries[-1][2] = None            # this gallery has ended
            if open_tag == tag:
                break


def read_page(path):
    """The text of the page at `path`; ValueError naming the byte where it
    is not UTF-8."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise ValueError('%s is not a page of the project: not UTF-8 at byte %d'
                         % (path, err.start))


def structure_problems(path):
    """One line per sign that the page is not whole: elements never closed,
    a gallery holding fewer pictures than it announces, no </html>."""
    text = read_page(path)
    parser = _Page()
    parser.feed(text)
    problems = ['%s: <%s> opened at line %d is never closed (the page is cut short)'
                % (path, tag, line) for tag, line in parser.open[:3]]
    problems += ['%s: a gallery announces %d pictures and holds %d' % (path, announced, held)
                 for announced, held, _ in parser.galleries if 0 <= held < announced]
    if not text.rstrip().endswith('</html>'):
        problems.append('%s: the page does not end with </html> (cut short)' % path)
    return problems


def picture_problems(path):
    """One line per <img> of the page at `path` that does not decode."""
    parser = _Page()
    parser.feed(read_page(path))
    problems = []
    for n, source in enumerate(parser.sources, 1):
        if source.startswith('data:image/'):
            data = base64.b64decode(source.split(',', 1)[1])
        else:
            target = os.path.join(os.path.dirname(path), source)
            data = open(target, 'rb').read() if os.path.isfile(target) else b''
        if not data or cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
            problems.append('%s: picture %d (%s) does not decode' % (path, n, source[:40]))
    return problems, len(parser.sources)


def open_in_browser(path, screenshot, width=1280, height=2400, browser=None):
    """Console messages of the page in headless Chromium; the screenshot is
    written to `screenshot`."""
    browser = browser or find_browser()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
             '--enable-logging=stderr', '--v=0', '--user-data-dir=%s' % profile,
             '--window-size=%d,%d' % (width, height),
             '--screenshot=%s' % os.path.abspath(screenshot),
             'file://%s' % os.path.abspath(path)],
            capture_output=True, text=True, timeout=120)
    if not os.path.isfile(screenshot):
        raise RuntimeError('%s wrote no screenshot: %s' % (browser, proc.stderr[-500:]))
    return [m.group(1) for m in map(CONSOLE.search, proc.stderr.splitlines()) if m]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('page', help='an HTML page written by the project')
    parser.add_argument('--screenshot', help='PNG to write (default: PAGE.png beside it)')
    parser.add_argument('--height', type=int, default=2400, help='of the browser window')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.page):
        print('error: %s does not exist' % args.page, file=sys.stderr)
        return 1
    try:
        whole = structure_problems(args.page)
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    if find_browser() is None:
        print('error: no Chromium found (%s); install it, e.g. apt-get install chromium'
              % ', '.join(BROWSERS), file=sys.stderr)
        return 2
    screenshot = args.screenshot or os.path.splitext(args.page)[0] + '.png'
    problems, count = picture_problems(args.page)
    problems = whole + problems + ['%s: browser console: %s' % (args.page, line)
                 for line in open_in_browser(args.page, screenshot, height=args.height)]
    for line in problems:
        print(line, file=sys.stderr)
    print('%s: %d pictures, %d problems; screenshot %s' % (args.page, count, len(problems),
                                                          screenshot))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
