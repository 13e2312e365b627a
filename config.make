# nginx sources `config.make` from the module directory; see nginx/.
. "$ngx_addon_dir/nginx/config.make"
