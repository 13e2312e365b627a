#!/usr/bin/perl
# POST …/apply-template: a chat body rendered with the model's template,
# no generation; the same prompt /v1/chat/completions runs.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model cml path={{MODEL260K}} chat_template=chatml;
EOF2
        location /v1/ { starling openai; }
        location = /tmpl { starling apply_template; }
        location / { starling worker; }
EOF3

my $msgs = [ { role => 'system', content => 'Be brief.' },
             { role => 'user', content => 'Hi there' } ];

my $r = $t->request('POST', '/v1/apply-template',
                    { model => 'cml', messages => $msgs });
is($r->{status}, 200, 'apply-template 200');
my $j = $r->{json};
is($j->{object}, 'chat.template', 'object');
is($j->{prompt}, "<|im_start|>system\nBe brief.<|im_end|>\n"
                 . "<|im_start|>user\nHi there<|im_end|>\n"
                 . "<|im_start|>assistant\n", 'exact ChatML prompt');
is($j->{n_tokens}, scalar @{$j->{tokens}}, 'n_tokens');
ok(grep({ $_ eq '<|im_end|>' } @{$j->{stop}}), 'the family stops on <|im_end|>');

my $tk = $t->request('POST', '/tokenize', { model => 'cml', content => $j->{prompt} });
is_deeply($j->{tokens}, $tk->{json}{tokens}, 'tokens == /tokenize of the prompt');

my $c = $t->request('POST', '/v1/chat/completions',
                    { model => 'cml', messages => $msgs, max_tokens => 1 });
is($c->{json}{usage}{prompt_tokens}, $j->{n_tokens},
   'chat completions runs that prompt (same token count)');

$r = $t->request('POST', '/tmpl', { model => 'tiny', messages => $msgs });
is($r->{status}, 200, 'one-endpoint location: 200');
ok(length $r->{json}{prompt}, 'a prompt for the default family');

$r = $t->request('POST', '/v1/apply-template', { model => 'cml' });
is($r->{status}, 400, 'no messages: 400');
is($r->{json}{error}{param}, 'messages', '... OpenAI error naming messages');
$r = $t->request('POST', '/v1/apply-template', { model => 'nope', messages => $msgs });
is($r->{status}, 404, 'unknown model: 404');
$r = $t->request('GET', '/v1/apply-template');
is($r->{status}, 405, 'GET: 405');

$t->stop;
$t->check_error_log;
done_testing();
